# The orchestrator image (docker-compose.yml builds it). Needs a registry for the base image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY lua ./lua
RUN pip install --no-cache-dir .
ENV CCTV_HOST=0.0.0.0 CCTV_PORT=8086
EXPOSE 8086
CMD ["cctv-orchestrator", "serve"]
