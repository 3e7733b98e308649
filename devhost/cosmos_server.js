// Starts @vercel/cosmosdb-server with keep-alive and a certificate devhost made for localhost.
// Usage: node cosmos_server.js <host> <port> <cert.pem> <key.pem>
"use strict";
const fs = require("fs");

// The emulator answers a point read of a missing document with a 500 (it reads a property of the
// undefined document). Real Cosmos DB answers 404, and the app relies on that, so the handler is
// wrapped before the route table captures it.
const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document");
const originalRead = readDocument.default;
readDocument.default = (account, req, res, params) => {
  try {
    return originalRead(account, req, res, params);
  } catch (error) {
    if (error instanceof TypeError) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
    throw error;
  }
};

// A conditional patch ("filter predicate") is evaluated by real Cosmos DB against the one addressed
// document. The emulator lower-cases the whole condition (so case-sensitive names and literals never
// match) and runs it as a query over every document in the container, so each patch costs time in
// proportion to the container's size and a big container serialises everything behind it. Evaluate
// the condition against the addressed document, as written; the patch itself is the emulator's own.
// Node runs this handler to completion before the next request, so check-then-patch stays atomic.
const path = require("path");
const patchOperations = require("@vercel/cosmosdb-server/lib/handler/_patch-operations");
const { parsePartitionKey } = require("@vercel/cosmosdb-server/lib/utils/get-partition-from-header");
const cosmosQuery = require(require.resolve("@zeit/cosmosdb-query", {
  paths: [path.dirname(require.resolve("@vercel/cosmosdb-server"))],
})).default;
const originalPatch = patchOperations.patchOperation;
patchOperations.patchOperation = (collection, input) => {
  if (!input.condition) {
    return originalPatch(collection, input);
  }
  const document = collection.document(input.id, parsePartitionKey(input.partitionKey, input.id)).read();
  if (!document) {
    return { statusCode: 404, body: { code: "NotFound", message: "Entity with the specified id does not exist." } };
  }
  const clause = /^\s*from\s+(\w+)\s+where\s+([\s\S]*)$/i.exec(input.condition);
  const sql = clause ? `SELECT * FROM ${clause[1]} WHERE ${clause[2]}` : `SELECT * FROM c ${input.condition}`;
  let matches;
  try {
    matches = cosmosQuery(sql).exec([document], { parameters: [] }).result.length > 0;
  } catch (error) {
    return { statusCode: 400, body: { code: "BadRequest", message: "Invalid condition in patch request." } };
  }
  if (!matches) {
    return {
      statusCode: 412,
      body: { code: "PreconditionFailed", message: "Condition specified in the patch request is not satisfied." },
    };
  }
  return originalPatch(collection, { ...input, condition: undefined });
};

// Every query the emulator runs starts by copying the container one element at a time
// (reduce(($, c) => [...$, {c}], [])): quadratic in the container's size, so with the demo's 37,000
// documents in `sites` one search took 37-60 s and stalled every other request. The generated code is
// rewritten to a linear filter+map with the same result.
const QueryProto = Object.getPrototypeOf(cosmosQuery("SELECT * FROM c"));
const generatedCode = Object.getOwnPropertyDescriptor(QueryProto, "code").get;
const QUADRATIC_FROM =
  /\$c\.reduce\(\(\$, (\w+)\) => typeof \1 !== "undefined" \? \[\.\.\.\$, \{\s*\1: \1\s*\}\] : \$, \[\]\)/;
Object.defineProperty(QueryProto, "code", {
  get() {
    return generatedCode.call(this).replace(QUADRATIC_FROM, (_, name) =>
      `$c.filter(${name} => typeof ${name} !== "undefined").map(${name} => ({ ${name}: ${name} }))`);
  },
});

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const [host, port, certPath, keyPath] = process.argv.slice(2);
const server = createHttpsServer({
  cert: fs.readFileSync(certPath),
  key: fs.readFileSync(keyPath),
  // Without keep-alive every request pays a new TLS handshake.
  keepAlive: true,
});
server.keepAliveTimeout = 120000;
server.listen(Number(port), host, () => {
  console.log(`cosmosdb-server ready at https://${host}:${port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
