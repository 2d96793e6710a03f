# The kubetrain operator image (charts/kubetrain runs it). Build from the repository root:
#   docker build -t kubetrain-operator:dev .
# Only the operator is installed: the trainer has its own image (trainer-image/Dockerfile).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY trainer-image ./trainer-image
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# A fixed non-root uid/gid (the chart's runAsUser), no home directory writes, no shell login.
RUN groupadd --system --gid 65532 kubetrain \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin kubetrain
USER 65532:65532
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080 8081 9443
ENTRYPOINT ["kubetrain"]
CMD ["operator", "run"]
