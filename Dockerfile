# One image for every Boxoffice process; docker-compose.yml picks the command
# (`boxoffice serve gateway|api|ticket`, `boxoffice worker`, `boxoffice migrate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BOXOFFICE_DATA_DIR=/var/lib/boxoffice

WORKDIR /src

# Dependencies in their own layer, so a code change does not reinstall them. They are read
# from pyproject.toml (quoted by Python, not the shell: "fastapi>=0.115" has a '>').
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

COPY . .
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/boxoffice --create-home boxoffice \
    && rm -rf /src

WORKDIR /var/lib/boxoffice
USER boxoffice

EXPOSE 8000 8001 8002 8003
CMD ["boxoffice", "serve", "api", "--host", "0.0.0.0"]
