# One image for every hostledger process; the command picks the service:
#   nameko run --config deploy/nameko.yaml services.billing.service:BillingService
# See deploy/compose.yaml and deploy/k8s/.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOSTLEDGER_HTTP_HOST=0.0.0.0

# psycopg is the pure-Python build (a binary build blocks eventlet); it loads
# the system libpq at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that a code change does not
# reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# the web pages' translations, compiled from the catalogues kept in the repository
RUN pybabel compile -q -D messages -d gateway/web/locale \
    && pip install --no-deps . \
    && python -c "import psycopg; assert psycopg.pq.__impl__ == 'python', psycopg.pq.__impl__"

RUN useradd --system --uid 10001 --gid 0 --home-dir /app --no-create-home hostledger
USER 10001

# The gateway listens on HOSTLEDGER_HTTP_PORT, the mail gateway on HOSTLEDGER_SMTP_PORT.
EXPOSE 8000 2525

CMD ["nameko", "run", "--config", "deploy/nameko.yaml", "gateway.service:GatewayService"]
