# The cimq daemon on the CimFS emulator backend (Linux has no cimfs.dll).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY workers ./workers
COPY native ./native
COPY scripts ./scripts
RUN npm ci && npm prune --omit=dev --ignore-scripts
ENV CIMQ_BACKEND=emulator CIMFS_EMULATOR_ROOT=/var/lib/cimfs-emulator
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["worker"]
