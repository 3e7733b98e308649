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

// Compiling a condition (parse, generate, load JS) cost the emulator 2-6 ms of CPU per patch, more than
// everything else a patch does, and every dose claim's condition is new (it names its booking and a
// version). Conditions are therefore compiled once per shape: their literals become parameters
// (@devhost0, ...) and the compiled query is kept; its meaning is unchanged. A literal used as a property
// name (c["end"]) stays as written.
const LITERAL = /'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(?<![\w.@$])(\d+(?:\.\d+)?)(?![\w.])/g;
const compiledConditions = new Map();
function compiledCondition(condition) {
  const parameters = [];
  const shape = condition.replace(LITERAL, (match, single, double, number, offset, whole) => {
    if (whole[offset - 1] === "[") return match;
    const name = `@devhost${parameters.length}`;
    const text = single !== undefined ? single : double;
    parameters.push({ name, value: text !== undefined ? text.replace(/\\(.)/g, "$1") : Number(number) });
    return name;
  });
  let query = compiledConditions.get(shape);
  if (!query) {
    const clause = /^\s*from\s+(\w+)\s+where\s+([\s\S]*)$/i.exec(shape);
    query = cosmosQuery(clause ? `SELECT * FROM ${clause[1]} WHERE ${clause[2]}` : `SELECT * FROM c ${shape}`);
    if (compiledConditions.size >= 1000) compiledConditions.clear();
    compiledConditions.set(shape, query);
  }
  return [query, parameters];
}
patchOperations.patchOperation = (collection, input) => {
  if (!input.condition) {
    return originalPatch(collection, input);
  }
  const document = collection.document(input.id, parsePartitionKey(input.partitionKey, input.id)).read();
  if (!document) {
    return { statusCode: 404, body: { code: "NotFound", message: "Entity with the specified id does not exist." } };
  }
  let matches;
  try {
    const [query, parameters] = compiledCondition(input.condition);
    matches = query.exec([document], { parameters }).result.length > 0;
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

// The change feed. The emulator answers a read with "A-IM: Incremental feed" with every document and
// etag "1" (and 304 to any continuation), so nothing could follow a container's changes. Real Cosmos DB
// keeps, per partition, the latest version of each changed document in the order of its logical sequence
// number (_lsn), and a reader continues from the etag it was last given. Here every document write takes
// the container's next _lsn and is appended to a log; a change feed read answers the documents whose
// current _lsn follows the continuation (If-None-Match: "<lsn>"; "*" = from now; none = from the
// beginning; If-Modified-Since = from a time), oldest first, at most x-ms-max-item-count of them, with the
// etag to continue from, or 304 when nothing changed. Latest-version mode: a document changed twice
// appears once, at its last change; deletes do not appear. One partition key range ("0"), as the
// emulator has; x-ms-documentdb-partitionkey narrows the feed to one partition.
const Items = require("@vercel/cosmosdb-server/lib/account/items").default;
const DocumentsClass = require("@vercel/cosmosdb-server/lib/account/documents").default;
const readDocuments = require("@vercel/cosmosdb-server/lib/handler/read-documents");
const originalSet = Items.prototype._set;
// A document's _lsn is kept beside it (real Cosmos DB shows _lsn in change feed items, not in reads).
Items.prototype._set = function set(data) {
  if (this instanceof DocumentsClass) {
    this._lsnCount = (this._lsnCount || 0) + 1;
    const lsnOf = this._lsnOf || (this._lsnOf = new Map());
    lsnOf.set(data._rid, this._lsnCount);
    (this._feedLog || (this._feedLog = [])).push([this._lsnCount, data._rid]);
    // Superseded and deleted entries are dropped once they outnumber the live ones.
    if (this._feedLog.length > 2 * this._data.size + 1024) {
      this._feedLog = this._feedLog.filter(([lsn, rid]) =>
        lsnOf.get(rid) === lsn && (rid === data._rid || this._data.has(rid)));
      for (const rid of lsnOf.keys()) if (rid !== data._rid && !this._data.has(rid)) lsnOf.delete(rid);
    }
  }
  return originalSet.call(this, data);
};

const DEFAULT_FEED_PAGE = 100;
function changeFeed(account, req, res, { dbId, collId }) {
  delete req.headers["a-im"]; // the emulator's own (wrong) handling keys on this header
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return { code: "NotFound", message: "Resource Not Found" };
  }
  const documents = collection.documents;
  const log = documents._feedLog || [];
  const latest = documents._lsnCount || 0;
  const wanted = String(req.headers["if-none-match"] || "").replace(/"/g, "").trim();
  let after = 0;
  if (wanted === "*") {
    after = latest;
  } else if (wanted) {
    after = Number(wanted);
    if (!Number.isInteger(after) || after < 0) {
      res.statusCode = 400;
      return { code: "BadRequest", message: "Invalid continuation (If-None-Match) for the change feed." };
    }
  }
  const since = req.headers["if-modified-since"] && !wanted ? Date.parse(req.headers["if-modified-since"]) / 1000 : null;
  const asked = Number(req.headers["x-ms-max-item-count"] || DEFAULT_FEED_PAGE);
  const limit = asked > 0 ? asked : DEFAULT_FEED_PAGE;
  let partition;
  if (req.headers["x-ms-documentdb-partitionkey"]) {
    partition = JSON.parse(req.headers["x-ms-documentdb-partitionkey"])[0];
  }
  const path = documents._getPartitionKeyPath();
  // The log is in _lsn order: find the first entry after the continuation by bisection.
  let low = 0;
  let high = log.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (log[middle][0] <= after) low = middle + 1;
    else high = middle;
  }
  const found = [];
  let position = after;
  for (let index = low; index < log.length && found.length < limit; index += 1) {
    const [lsn, rid] = log[index];
    const item = documents._data.get(rid);
    const document = item && item.read();
    position = lsn;
    if (!document || documents._lsnOf.get(rid) !== lsn) continue; // changed again later, or deleted
    if (since !== null && document._ts < since) continue;
    if (partition !== undefined && path.reduce((value, key) => (value == null ? value : value[key]), document) !== partition) continue;
    found.push({ ...document, _lsn: lsn });
  }
  if (!found.length) position = Math.max(position, after);
  res.setHeader("etag", `"${found.length ? found[found.length - 1]._lsn : position}"`);
  res.setHeader("x-ms-item-count", String(found.length));
  res.setHeader("lsn", String(latest));
  if (!found.length) {
    res.statusCode = 304;
    return {};
  }
  return { _rid: collection.read()._rid, Documents: found, _count: found.length };
}
const originalReadDocuments = readDocuments.default;
readDocuments.default = (account, req, res, params) =>
  String(req.headers["a-im"] || "").toLowerCase() === "incremental feed"
    ? changeFeed(account, req, res, params)
    : originalReadDocuments(account, req, res, params);

// Transactional batch. Real Cosmos DB runs a batch's operations in order within one partition, all or
// nothing: when one fails, none is applied, the answer is 207 with that operation's own status (409, 412,
// 404, ...) and 424 (failed dependency) for every other, and patch (with a filter predicate) is allowed.
// The emulator applies each operation as it goes, keeps what came before a failure and refuses patch.
// Here every operation is first evaluated against staged copies (a document changed earlier in the batch
// is seen changed), and only when all succeed are the staged writes applied to the store, in order. Node
// runs this handler to completion once the body is read, so no other request sees or interleaves with a
// half-applied batch, and a failed batch writes nothing (no change-feed entry either).
const batchDocuments = require("@vercel/cosmosdb-server/lib/handler/batch-documents");
const readJson = require("@vercel/cosmosdb-server/lib/json").default;
const getPartitionFromHeader = require("@vercel/cosmosdb-server/lib/utils/get-partition-from-header").default;
const originalBatch = batchDocuments.default;
const MAX_BATCH_OPERATIONS = 100;

function batchFailure(statusCode, code, message) {
  return { statusCode, body: { code, message } };
}

function stageOperation(documents, staged, partition, header, input) {
  const current = (id) => (staged.has(id) ? staged.get(id) : documents._item("/id", id, partition).read() || null);
  const matches = (input2, document) => !input2.ifMatch || input2.ifMatch === document._etag;
  const type = String((input && input.operationType) || "");
  const body = input && input.resourceBody;
  const id = (type === "Create" || type === "Upsert" || type === "Replace") ? body && body.id : input && input.id;
  if (typeof id !== "string" || !id) return batchFailure(400, "BadRequest", "The operation has no id.");
  if ((type === "Create" || type === "Upsert" || type === "Replace") && documents._getPartition(body) !== partition) {
    return batchFailure(400, "BadRequest", "PartitionKey extracted from document doesn't match the one specified in the header.");
  }
  const existing = current(id);
  const precondition = batchFailure(412, "PreconditionFailed",
    "Operation cannot be performed because one of the specified precondition is not met.");
  switch (type) {
    case "Read":
      return existing ? { statusCode: 200, body: existing } : batchFailure(404, "NotFound", "Entity with the specified id does not exist in the system.");
    case "Create":
      if (existing) return batchFailure(409, "Conflict", "Entity with the specified id already exists in the system.");
      staged.set(id, body);
      return { statusCode: 201, write: ["create", id, body] };
    case "Upsert":
      if (existing && !matches(input, existing)) return precondition;
      staged.set(id, body);
      return { statusCode: existing ? 200 : 201, write: [existing ? "replace" : "create", id, body] };
    case "Replace":
      if (!existing) return batchFailure(404, "NotFound", "Entity with the specified id does not exist in the system.");
      if (!matches(input, existing)) return precondition;
      staged.set(id, body);
      return { statusCode: 200, write: ["replace", id, body] };
    case "Delete":
      if (!existing) return batchFailure(404, "NotFound", "Entity with the specified id does not exist in the system.");
      if (!matches(input, existing)) return precondition;
      staged.set(id, null);
      return { statusCode: 204, write: ["delete", id, null] };
    case "Patch": {
      if (!existing) return batchFailure(404, "NotFound", "Entity with the specified id does not exist in the system.");
      // The single-document patch (with the condition evaluated as above) run against the staged copy:
      // its "store" only hands the patched document back.
      let patched = null;
      const copy = {
        document: () => ({ read: () => existing }),
        documents: { query: () => ({ result: [] }), replace: (next) => (patched = next) },
      };
      const result = patchOperations.patchOperation(copy, {
        id, partitionKey: header, ifMatch: input.ifMatch,
        operations: (body && body.operations) || [], condition: body && body.condition,
      });
      if (result.statusCode >= 400) return result;
      staged.set(id, patched);
      return { statusCode: 200, write: ["replace", id, patched] };
    }
    default:
      return batchFailure(400, "BadRequest", `Operation type '${type}' is not supported in Batch.`);
  }
}

// "x-devhost-bulk-load: true" keeps the emulator's own loose batch (any size, any partition, not atomic):
// only for tests that load many documents fast; nothing the app sends uses it.
batchDocuments.default = async (account, req, res, params) => {
  const atomic = String(req.headers["x-ms-cosmos-batch-atomic"] || "").toLowerCase() === "true";
  if (!atomic || req.headers["x-devhost-bulk-load"] === "true") return originalBatch(account, req, res, params);
  const body = await readJson(req);
  const collection = account.database(params.dbId).collection(params.collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return { code: "NotFound", message: "Resource Not Found" };
  }
  const header = getPartitionFromHeader(req);
  if (!Array.isArray(body) || body.length === 0 || body.length > MAX_BATCH_OPERATIONS || !header) {
    res.statusCode = 400;
    return { code: "BadRequest", message: "A batch has 1 to 100 operations and a partition key header." };
  }
  const partition = parsePartitionKey(header, undefined);
  const documents = collection.documents;
  const staged = new Map();
  const outcomes = [];
  for (const input of body) {
    const outcome = stageOperation(documents, staged, partition, header, input);
    outcomes.push(outcome);
    if (outcome.statusCode >= 400) {
      res.statusCode = 207;
      return body.map((_, index) => index === outcomes.length - 1
        ? { statusCode: outcome.statusCode, requestCharge: 1, resourceBody: outcome.body }
        : { statusCode: 424, requestCharge: 0 });
    }
  }
  // Every operation succeeded on the staged copies: apply the writes, in order, to the store.
  return outcomes.map((outcome) => {
    let resourceBody = outcome.body;
    if (outcome.write) {
      const [kind, id, next] = outcome.write;
      if (kind === "create") resourceBody = documents.create(next);
      else if (kind === "delete") documents.delete(id, partition);
      else resourceBody = documents.replace(next, documents._item("/id", id, partition).read());
    }
    return { statusCode: outcome.statusCode, requestCharge: 1,
      eTag: resourceBody ? resourceBody._etag : undefined, resourceBody };
  });
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
