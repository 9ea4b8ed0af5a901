# The orchestrator image (docker-compose.yml builds it). Needs a registry for the base image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY lua ./lua
RUN pip install --no-cache-dir .
# An unprivileged user. It owns only /app/data (CCTV_DATA_DIR's default: the development admin
# key and the embedded Valkey when no key and no VALKEY_URL are configured). The Docker engine is
# reached over DOCKER_HOST (docker-compose.yml: a filtering proxy), never through a socket here.
RUN groupadd --system --gid 10001 cctv \
    && useradd --system --uid 10001 --gid cctv --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin cctv \
    && mkdir -p /app/data && chown cctv:cctv /app/data
USER 10001:10001
ENV CCTV_HOST=0.0.0.0 CCTV_PORT=8086
EXPOSE 8086
CMD ["cctv-orchestrator", "serve"]
