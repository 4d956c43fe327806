# berkeley-agent in a container, in the spirit of the seeds' Rust berkeley_master image.
#
#   docker build -t berkeley-agent .
#   docker run -d --name berkeley-agent --network host --cap-add SYS_TIME \
#     -e BERKELEY_AGENT_INTERFACE=eth0 berkeley-agent
#
# Host networking is the supported way to run it: mDNS multicast, the UDP port (7412) and the
# control server (127.0.0.1:7413) all need the host's own interfaces. Every option of `run` comes
# from a BERKELEY_AGENT_<OPTION> environment variable (e.g. BERKELEY_AGENT_PEER, _CLUSTER,
# _PRIORITY, _CLOCK=virtual) or from arguments after the image name. CAP_SYS_TIME lets the agent
# discipline the host's kernel clock; without it `--clock auto` falls back to a virtual clock.
#
# The image installs exactly what `npm pack` ships (the package test in test/package.test.ts
# packs, installs and runs the same tarball): the esbuild bundle dist/berkeley-agent.mjs, run by
# bin/berkeley-agent with node's --max-semi-space-size=1 (its shebang), and only the runtime
# dependencies.

# Stage 1: pack. `npm pack` runs "prepack" (scripts/build.ts), which needs the dev dependencies.
FROM node:20-slim AS pack
WORKDIR /src
# packaging/ holds the msgpackr-extract stub that package.json's `overrides` points at, so it must
# be there before `npm ci`. No install scripts: koffi and esbuild work from their prebuilt
# per-platform packages.
COPY package.json package-lock.json ./
COPY packaging/ packaging/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY bin/ bin/
COPY src/ src/
COPY scripts/build.ts scripts/build.ts
COPY systemd/ systemd/
COPY README.md ./
RUN npm pack --pack-destination /tmp && mv /tmp/berkeley-agent-*.tgz /tmp/berkeley-agent.tgz

# Stage 2: the agent, installed from the tarball as `npm install -g` would on a box.
FROM node:20-slim
ENV NODE_ENV=production \
    BERKELEY_AGENT_STATE_DIR=/var/lib/berkeley-agent
COPY --from=pack /tmp/berkeley-agent.tgz /tmp/berkeley-agent.tgz
RUN npm install -g --omit=dev --ignore-scripts --no-audit --no-fund /tmp/berkeley-agent.tgz \
 && rm /tmp/berkeley-agent.tgz && npm cache clean --force \
 && mkdir -p /var/lib/berkeley-agent

# Term and learned frequency (the drift file) survive restarts when this is a volume.
VOLUME ["/var/lib/berkeley-agent"]
# Runs as root inside the container so that --cap-add SYS_TIME is effective; it gets no other
# capability than Docker's defaults plus that one.
ENTRYPOINT ["berkeley-agent"]
CMD ["run"]
