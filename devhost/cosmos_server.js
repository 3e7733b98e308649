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
