# The consumer image of the production shape (docker-compose.yml).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends graphviz && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY consumers ./consumers
COPY schemas ./schemas
COPY examples ./examples
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["registry"]
CMD ["consume"]
