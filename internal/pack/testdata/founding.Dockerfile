# Written by shoal package: shoal serves the models in /models; the Python base
# image runs their custom code. Build it with: docker build -t NAME:TAG .
FROM python:3.11-slim
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
# The python backend starts /usr/bin/python3 unless model.yaml sets python.
RUN [ -e /usr/bin/python3 ] || ln -s "$(command -v python3)" /usr/bin/python3
COPY shoal /shoal
COPY models /models
ENV HOME=/tmp
USER 65532:65532
EXPOSE 8080 8081
LABEL io.shoal.model.iris.format="http"
LABEL io.shoal.model.iris.versions="1"
LABEL io.shoal.models="iris"
LABEL org.opencontainers.image.created="1970-01-01T00:00:00Z"
LABEL org.opencontainers.image.source="https://github.com/shoal-ml/shoal"
LABEL org.opencontainers.image.title="iris"
ENTRYPOINT ["/shoal", "serve"]
CMD ["-http", "0.0.0.0:8080", "-grpc", "0.0.0.0:8081", "/models"]
