# syntax=docker/dockerfile:1
# The turnout operator's image:  docker build -t turnout/turnout:0.1.0 .
# tests/chart/test_image.py lints this file with hadolint and runs its two install steps
# (build the wheel, install it into a fresh virtualenv) on the machine running the tests.

# The builder makes the wheel; only the wheel reaches the final image.
FROM python:3.12.12-slim-bookworm AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# The final image: the interpreter, a virtualenv without pip holding turnout and its
# dependencies (all published as wheels), no compiler or build tool.
FROM python:3.12.12-slim-bookworm
ENV PATH=/opt/turnout/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    python -m venv --without-pip /opt/turnout \
    && pip --python /opt/turnout/bin/python install --no-cache-dir --only-binary=:all: /dist/*.whl
# The chart runs it as this user too, with a read-only root filesystem and /tmp as an emptyDir.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["turnout"]
CMD ["run"]
