// The page's resumable upload client (gateway/web/src/upload, bundled for Node
// into dist-node/ by build.mjs) against the real gateway, by grpc-web, as the
// admin frontend's code runs it. Prints one JSON object per line.
//
// MODE=resume: uploads BIG_FILE into the draft IMPORT_ID in parts. Once
// KILL_AT bytes are committed it prints {"event":"kill"} once and goes on: the
// test kills the gateway process and starts another on the same address. The
// client rides the outage out (retries with backoff, asks GetUpload for the
// committed offset) and completes; {"event":"done"} carries what it sent.
//
// MODE=checks: the refusals a client must be able to read over grpc-web, one
// {"check", "code", "reason", "preconditions"} line each. Env: IMPORT_ID (an
// empty draft), STARTED_ID (a started import), EXPIRED_ID (an expired upload),
// FOREIGN_ID (another organization's upload); tokens ADMIN_TOKEN and
// MEMBER_TOKEN (a plain user of one organization).
//
// Env: GATEWAY_URL, MODE, and the above. Exit 0 when every step ran.
import { openAsBlob } from "node:fs";
import {
  Code,
  ConnectError,
  ImportService,
  createClient,
  createGrpcWebTransport,
  describeError,
  uploadFile,
} from "../dist-node/upload-client.mjs";

const required = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function clientFor(token) {
  const transport = createGrpcWebTransport({
    baseUrl: required("GATEWAY_URL"),
    interceptors: token ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] : [],
  });
  return createClient(ImportService, transport);
}

async function resume() {
  const client = clientFor(required("ADMIN_TOKEN"));
  const killAt = Number(required("KILL_AT"));
  const file = await openAsBlob(required("BIG_FILE"));
  let asked = false;
  let waits = 0;
  const result = await uploadFile({
    client,
    importId: required("IMPORT_ID"),
    file,
    fileName: "big-rolodex.csv",
    importType: "rolodex",
    maxAttempts: 20,
    baseDelayMs: 200,
    maxDelayMs: 2000,
    onUploadId: (uploadId) => emit({ event: "upload", uploadId }),
    onProgress: (p) => {
      if (p.waiting) waits++;
      if (!asked && p.committedBytes >= killAt) {
        asked = true;
        emit({ event: "kill", committed: p.committedBytes });
      }
    },
  });
  emit({
    event: "done",
    fileId: result.file.id,
    sha256: result.sha256,
    serverSha256: result.file.sha256,
    sentBytes: result.sentBytes,
    size: file.size,
    waits,
  });
}

/** Runs `f` and prints how it was refused (or that it was not). */
async function check(name, f) {
  try {
    const value = await f();
    emit({ check: name, code: "OK", value: value ?? null });
  } catch (e) {
    if (!(e instanceof ConnectError)) throw e;
    const d = describeError(e);
    emit({ check: name, code: d.codeName, reason: d.reason, preconditions: d.violations, message: d.message });
  }
}

async function checks() {
  const admin = clientFor(required("ADMIN_TOKEN"));
  const member = clientFor(required("MEMBER_TOKEN"));
  const anonymous = clientFor("");
  const importId = required("IMPORT_ID");
  const bytes = new TextEncoder().encode("name,category\nSt. Mark's Church,church\nGreenlawn,cemetery\n");
  const header = (over = {}) => ({ importId, fileName: "vendors.csv", importType: "rolodex", declaredSizeBytes: BigInt(bytes.length), ...over });
  const begin = async (client, sha = "", over = {}) =>
    (await client.createUpload({ header: header(over), declaredSha256: sha, requestId: crypto.randomUUID() })).upload;

  const up = await begin(admin);
  const part = (client, offset, data) => client.writeUploadPart({ uploadId: up.id, offset: BigInt(offset), data });
  await check("first part", async () => Number((await part(admin, 0, bytes.slice(0, 20))).committedBytes));
  await check("part re-sent", async () => Number((await part(admin, 0, bytes.slice(0, 20))).committedBytes));
  await check("part with a gap", () => part(admin, 30, bytes.slice(30)));
  await check("committed offset", async () => Number((await admin.getUpload({ uploadId: up.id })).upload.committedBytes));
  await check("past the declared size", () => part(admin, 20, new Uint8Array(bytes.length)));
  await check("no token", () => anonymous.getUpload({ uploadId: up.id }));
  await check("unknown upload", () => admin.getUpload({ uploadId: crypto.randomUUID() }));
  await check("another organization's upload", () => member.getUpload({ uploadId: required("FOREIGN_ID") }));
  await check("unknown upload, as a plain user", () => member.getUpload({ uploadId: crypto.randomUUID() }));
  await check("expired upload", () => admin.writeUploadPart({ uploadId: required("EXPIRED_ID"), offset: 0n, data: bytes }));
  await check("upload to a started import", () => begin(admin, "", { importId: required("STARTED_ID") }));
  await admin.abortUpload({ uploadId: up.id });

  const wrong = await begin(admin, "0".repeat(64));
  await admin.writeUploadPart({ uploadId: wrong.id, offset: 0n, data: bytes });
  await check("wrong checksum", () => admin.completeUpload({ uploadId: wrong.id }));
  await check("nothing attached", async () => (await admin.getImport({ importId })).import.files.length);
}

const mode = required("MODE");
const deadline = setTimeout(() => (emit({ event: "timeout" }), process.exit(2)), Number(process.env.TIMEOUT_MS || 300_000));
try {
  if (mode === "resume") await resume();
  else if (mode === "checks") await checks();
  else throw new Error(`MODE must be resume or checks, not ${mode}`);
  clearTimeout(deadline);
} catch (e) {
  const d = e instanceof ConnectError ? describeError(e) : { message: String(e?.stack ?? e) };
  emit({ event: "error", ...d, code: e?.code !== undefined ? (Code[e.code] ?? e.code) : undefined });
  process.exit(1);
}
