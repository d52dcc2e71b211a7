# The project's mock OpenAI-compatible provider as a small image (docker-compose's stand-in for real endpoints).
# Only the mock provider goes in (scripts/mock-provider/, built by tsconfig.mock-provider.json): it imports
# nothing but Node's own modules, so the image needs no node_modules and no other code of the project.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.mock-provider.json ./
COPY scripts/mock-provider ./scripts/mock-provider
RUN npm ci --no-audit --no-fund && npm run build:mock-provider

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /src/dist/scripts/mock-provider ./dist/scripts/mock-provider
ENV MOCK_HOST=0.0.0.0 MOCK_PORT=80
# Runs as root: it listens on port 80, the port of the endpoints in the converted example.
EXPOSE 80
HEALTHCHECK --interval=5s --timeout=3s --retries=10 CMD node -e "fetch('http://127.0.0.1:'+process.env.MOCK_PORT+'/__mock/requests').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/scripts/mock-provider/cli.js"]
