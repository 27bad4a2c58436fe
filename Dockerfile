# AURA exporter: slim Python, CPU-only torch, non-root, shipped model included.
# Build: docker build -t aura-exporter .
# Run:   docker run -p 10977:10977 -v $PWD/aura.yml:/etc/aura/aura.yml:ro aura-exporter
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENBLAS_NUM_THREADS=1

WORKDIR /opt/aura
# torch first and from the CPU index: ncps does not declare it, and PyPI's default is CUDA.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install .
COPY models ./models
COPY aura.example.yml /etc/aura/aura.yml
COPY deploy/healthcheck.py ./healthcheck.py

RUN useradd --system --uid 10977 --home-dir /var/lib/aura --create-home aura
USER 10977
EXPOSE 10977
VOLUME ["/var/lib/aura"]
# /-/healthy answers without basic auth; with TLS on, the check retries over HTTPS to its own
# listener without verifying the certificate (the image has no curl; deploy/healthcheck.py).
# The port comes from the running `--web.listen-address`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/opt/aura/healthcheck.py"]
ENTRYPOINT ["aura"]
CMD ["run", "--config.file=/etc/aura/aura.yml", "--web.listen-address=:10977"]
