// Cosmos DB for NoSQL: the account, the database and one container per entry of `containers`.

param name string
param location string
param tags object
param databaseName string

@description('Objects with name, partitionKey, ttl (bool), throughputShare (percent of the total) and indexedPaths (empty: index everything).')
param containers array

@description('The planned total autoscale maximum (RU/s) across the containers; each gets its share, at least 1,000.')
@minValue(6000)
param autoscaleMaxThroughput int

param zoneRedundant bool = false

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: zoneRedundant
      }
    ]
    // Session is what the saga relies on: a writer reads its own writes through the same client.
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    // Entra ID only: no account key exists that could be leaked, and the data-plane role below is
    // the whole of the app's access. Key-based metadata writes are off too, so containers and
    // throughput change only through this template.
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    // Provisioned (autoscale) throughput, not serverless: serverless caps a container's burst far
    // below the booking peak and cannot be given a guaranteed floor before a campaign opens.
    capabilities: []
    // Point-in-time restore of personal data after a bad import or a bug, at no standing cost.
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

// Cosmos DB's default policy, for containers read by point reads or queried on many fields.
var indexEverything = {
  indexingMode: 'consistent'
  automatic: true
  includedPaths: [
    {
      path: '/*'
    }
  ]
  excludedPaths: [
    {
      path: '/"_etag"/?'
    }
  ]
}

// Throughput per container rather than shared at the database: bookings and sites take most of the
// load (docs/capacity.md), and shared throughput would spread RU evenly over every container's
// partitions, starving the hot ones while config and the waiting room sit idle.
resource sqlContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [
  for c in containers: {
    parent: database
    name: c.name
    properties: {
      resource: {
        id: c.name
        partitionKey: {
          paths: [
            c.partitionKey
          ]
          kind: 'Hash'
          version: 2
        }
        // Only the paths the app queries are indexed where a policy is given: every indexed path is
        // paid for on every write, and bookings are written several times per booking.
        indexingPolicy: empty(c.indexedPaths) ? indexEverything : {
          indexingMode: 'consistent'
          automatic: true
          includedPaths: map(c.indexedPaths, p => { path: p })
          excludedPaths: [
            {
              path: '/*'
            }
          ]
        }
        // -1 turns expiry on without a default: only documents that carry their own `ttl` expire
        // (lock-out stubs, delivery records, waiting-room journals, idempotency keys).
        defaultTtl: c.ttl ? -1 : null
      }
      options: {
        autoscaleSettings: {
          maxThroughput: max(1000, (autoscaleMaxThroughput * c.throughputShare / 100000) * 1000)
        }
      }
    }
  }
]

output name string = account.name
output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
