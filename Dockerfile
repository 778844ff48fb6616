# The one image Outrigger runs from in a cluster: the control plane (`control-plane`), the injected
# proxy (`proxy`) and the injected init container (`proxy-init`) are all `outrigger` subcommands.
#
#   docker build -t ghcr.io/outrigger/outrigger:0.1.0 .
#
# Stage 1 builds with the dev dependencies and the node-gyp toolchain (the SO_ORIGINAL_DST addon);
# stage 2 holds only what runs: production node_modules, the compiled JavaScript, the .proto files
# read at run time, the addon, and iptables for proxy-init. It runs as uid 2102, the proxy's uid
# (proxy-init is given uid 0 and NET_ADMIN/NET_RAW by the pod spec the injector writes; the control
# plane Deployment sets its own uid).

FROM node:24-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make g++ python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# node-gyp builds against this Node's own headers instead of downloading them.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json ./
# Scripts off: `install` (node-gyp) and `prepare` (tsc) need files copied below.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY native/binding.gyp native/origdst.c ./native/
COPY bin ./bin
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev \
 && rm -rf native/build/Release/obj.target native/build/Release/.deps

FROM node:24-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 2102 outrigger \
 && useradd --uid 2102 --gid 2102 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin outrigger
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist/src ./dist/src
# Every .proto: the control plane and the proxy load them at run time (@grpc/proto-loader).
COPY --from=build /src/src/api/*.proto ./src/api/
COPY --from=build /src/native/build/Release/origdst.node ./native/build/Release/origdst.node
USER 2102:2102
ENTRYPOINT ["node", "/app/bin/outrigger.js"]
CMD ["--help"]
