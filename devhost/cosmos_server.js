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

// read_items (the SDK's "read many") sends one query per partition key range naming every id and
// partition key: "c.pk = @pk AND c.id IN (@id0, ...)" for one logical partition, or
// "(c.id = @param_id0 AND c.pk = @param_pk00) OR ..." across partitions, up to 1,000 pairs. The
// emulator's query parser recurses once per OR and overflows its stack long before 1,000, and would scan
// the whole container besides. Real Cosmos DB answers these as point reads, so they are answered here by
// looking each document up by id and partition key; every other query goes to the emulator as before.
const Documents = require("@vercel/cosmosdb-server/lib/account/documents").default;
const SAME_PARTITION = /^SELECT \* FROM c WHERE c\.(\w+) = @pk AND c\.id IN \(([@\w, ]+)\)$/;
const ID_IN = /^SELECT \* FROM c WHERE c\.id IN \( ?([@\w, ]+?) ?\)$/;
const PAIR = /\( c\.id = (@\w+) AND c\.(\w+) = (@\w+) \)/g;
const PAIRS = /^SELECT \* FROM c WHERE \( \( c\.id = @\w+ AND c\.\w+ = @\w+ \)( OR \( c\.id = @\w+ AND c\.\w+ = @\w+ \))* \)$/;

function readManyPairs(params, partitionPath) {
  const query = typeof params.query === "string" ? params.query.trim() : "";
  const values = new Map((params.parameters || []).map(p => [p.name, p.value]));
  const path = partitionPath.length === 1 ? partitionPath[0] : null;
  const names = list => list.split(",").map(name => name.trim()).filter(Boolean);
  let match = SAME_PARTITION.exec(query);
  if (match && match[1] === path && values.has("@pk")) {
    return names(match[2]).map(name => [values.get(name), values.get("@pk")]);
  }
  match = ID_IN.exec(query);
  if (match && path === "id") {
    return names(match[1]).map(name => [values.get(name), values.get(name)]);
  }
  if (PAIRS.test(query)) {
    const pairs = [];
    for (const pair of query.matchAll(PAIR)) {
      if (pair[2] !== path) return null;
      pairs.push([values.get(pair[1]), values.get(pair[3])]);
    }
    return pairs;
  }
  return null;
}

const originalQuery = Documents.prototype.query;
Documents.prototype.query = function query(params, options) {
  const pairs = readManyPairs(params || {}, this._getPartitionKeyPath());
  if (!pairs || pairs.some(([id, pk]) => typeof id !== "string" || (typeof pk !== "string" && typeof pk !== "number"))) {
    return originalQuery.call(this, params, options);
  }
  if (!this._parent.read()) return null;
  const result = [];
  for (const [id, pk] of pairs) {
    const document = this._item("/id", id, pk).read();
    if (document) result.push(document);
  }
  return { result, continuation: null };
};

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const [host, port, certPath, keyPath] = process.argv.slice(2);
const server = createHttpsServer({
  cert: fs.readFileSync(certPath),
  key: fs.readFileSync(keyPath),
  // Without keep-alive every request pays a new TLS handshake.
  keepAlive: true,
});
server.keepAliveTimeout = 120000;

// Fault injection, for tests of what the app does when Cosmos DB throttles (429), times out (408) or is
// unavailable (503): that fraction of document requests fails instead of being served. Half of the
// injected 408s on writes come after the write was applied, as a real timeout can. Set at start with
// COSMOS_FAULT_RATE (and COSMOS_FAULT_STATUSES, comma-separated), or at run time:
//   POST /_devhost/faults {"rate": 0.05, "statuses": [408, 429, 503]}   GET /_devhost/faults
// The answer to both is the settings and how many faults were injected, by status.
const faults = {
  rate: Number(process.env.COSMOS_FAULT_RATE || 0),
  statuses: (process.env.COSMOS_FAULT_STATUSES || "408,429,503").split(",").map(Number),
  injected: {},
};
const FAULT_MESSAGES = {
  408: ["RequestTimeout", "Request timed out (injected by devhost)."],
  429: ["TooManyRequests", "Request rate is large (injected by devhost)."],
  503: ["ServiceUnavailable", "Service is unavailable (injected by devhost)."],
};
const DOCUMENTS = /\/docs(\/|\?|$)/;

function sendFault(res, status) {
  const [code, message] = FAULT_MESSAGES[status] || ["Fault", "Injected by devhost."];
  faults.injected[status] = (faults.injected[status] || 0) + 1;
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("x-ms-activity-id", require("crypto").randomUUID());
  res.setHeader("x-ms-request-charge", "0");
  if (status === 429) {
    res.setHeader("x-ms-retry-after-ms", "20");
    res.setHeader("x-ms-substatus", "3200");
  }
  res.end(JSON.stringify({ code, message }));
}

function faultsAdmin(req, res) {
  let text = "";
  req.on("data", (chunk) => (text += chunk));
  req.on("end", () => {
    if (req.method === "POST") {
      try {
        const wanted = JSON.parse(text || "{}");
        const rate = Number(wanted.rate ?? 0);
        if (!(rate >= 0 && rate <= 1)) throw new Error("rate must be between 0 and 1");
        faults.rate = rate;
        if (Array.isArray(wanted.statuses)) faults.statuses = wanted.statuses.map(Number);
        faults.injected = {};
      } catch (error) {
        res.statusCode = 400;
        res.end(JSON.stringify({ message: String(error.message || error) }));
        return;
      }
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(faults));
  });
}

const serve = server.listeners("request");
server.removeAllListeners("request");
server.on("request", (req, res) => {
  if (req.url.startsWith("/_devhost/faults")) {
    faultsAdmin(req, res);
    return;
  }
  if (faults.rate > 0 && DOCUMENTS.test(req.url) && Math.random() < faults.rate) {
    const status = faults.statuses[Math.floor(Math.random() * faults.statuses.length)];
    const isQuery = String(req.headers["x-ms-documentdb-isquery"] || "").toLowerCase() === "true";
    const isWrite = req.method !== "GET" && req.method !== "HEAD" && !isQuery;
    if (status === 408 && isWrite && Math.random() < 0.5) {
      // Timed out after the write was applied: serve it, drop the answer, send the timeout instead.
      const real = { setHeader: res.setHeader, writeHead: res.writeHead, write: res.write, end: res.end };
      res.setHeader = () => res;
      res.writeHead = () => res;
      res.write = () => true;
      res.end = () => {
        Object.assign(res, real);
        sendFault(res, status);
        return res;
      };
    } else {
      req.resume();
      req.on("end", () => sendFault(res, status));
      return;
    }
  }
  for (const handler of serve) handler.call(server, req, res);
});
server.listen(Number(port), host, () => {
  console.log(`cosmosdb-server ready at https://${host}:${port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
