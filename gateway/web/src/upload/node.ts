// The upload client for Node (integration tests, scripts, other services'
// tooling): the very client the page uses, with what a Node caller needs to
// reach a gateway by grpc-web. `npm run build` bundles it into
// dist-node/upload-client.mjs; nothing is fetched at run time.
export * from "./index.js";
export { Code, ConnectError, createClient } from "@connectrpc/connect";
export { createGrpcWebTransport } from "@connectrpc/connect-web";
export { ImportService } from "../gen/passare/imports/v1/imports_pb.js";
export { describeError } from "../api/errors.js";
