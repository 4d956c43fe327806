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
FROM node:20-slim

ENV NODE_ENV=production \
    BERKELEY_AGENT_STATE_DIR=/var/lib/berkeley-agent
WORKDIR /opt/berkeley-agent

# Dependencies first (cached layer). packaging/ holds the msgpackr-extract stub that
# package.json's `overrides` points at, so it must be there before `npm ci`. No install scripts:
# koffi, esbuild (for tsx) and friends work from their prebuilt per-platform packages.
COPY package.json package-lock.json ./
COPY packaging/ packaging/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# The sources run as shipped, through tsx (no build step).
COPY bin/ bin/
COPY src/ src/
COPY systemd/ systemd/
COPY README.md ./
RUN chmod 0755 bin/berkeley-agent \
 && ln -s /opt/berkeley-agent/bin/berkeley-agent /usr/local/bin/berkeley-agent \
 && mkdir -p /var/lib/berkeley-agent

# Term and learned frequency (the drift file) survive restarts when this is a volume.
VOLUME ["/var/lib/berkeley-agent"]
# Runs as root inside the container so that --cap-add SYS_TIME is effective; it gets no other
# capability than Docker's defaults plus that one.
ENTRYPOINT ["/opt/berkeley-agent/bin/berkeley-agent"]
CMD ["run"]
