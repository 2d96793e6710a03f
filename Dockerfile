# The kubetrain operator image (charts/kubetrain runs it). Build from the repository root:
#   docker build -t kubetrain-operator:dev .
# BASE is any Debian-like image with python3 (>= 3.11) and its venv module: the default is the
# official slim Python image; the tests build on a Debian root filesystem made with debootstrap
# (no registry is reachable there), see kubetrain.devcluster.images.
# Only the operator is installed: the trainer has its own image (trainer-image/Dockerfile).
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
WORKDIR /src
# Dependencies first, in a layer of their own: a change to the code alone rebuilds only the last
# layer. A virtualenv keeps the install off the base's system Python (Debian marks it externally
# managed) and makes one directory to copy; constraints.txt pins what the tests ran against.
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv /opt/kubetrain \
 && python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
 && /opt/kubetrain/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt -r requirements.txt
COPY README.md ./
COPY operator ./operator
COPY trainer-image ./trainer-image
RUN /opt/kubetrain/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps .

FROM ${BASE}
COPY --from=build /opt/kubetrain /opt/kubetrain
ENV PATH=/opt/kubetrain/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# A fixed non-root uid/gid (the chart's runAsUser) with a passwd entry, as tools expect one; the
# root filesystem stays read-only.
RUN groupadd --system --gid 65532 kubetrain \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin kubetrain
USER 65532:65532
EXPOSE 8080 8081 9443
ENTRYPOINT ["kubetrain"]
CMD ["operator", "run"]
