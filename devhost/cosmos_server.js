// Starts @vercel/cosmosdb-server with keep-alive and a certificate devhost made for localhost.
// Usage: node cosmos_server.js <host> <port> <cert.pem> <key.pem>
"use strict";
const fs = require("fs");
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
