// The storage account: the Functions host's own state (timer leases, keys), the app's queues and
// blob containers, and the container Flex Consumption deploys the app package from.

param name string
param location string
param tags object

@description('The app\'s queues (shared/resources.py QUEUES); each also gets its "-poison" queue.')
param queues array

@description('The app\'s blob containers (shared/resources.py BLOB_CONTAINERS).')
param blobContainers array

@description('The container Flex Consumption reads the app package from.')
param deploymentContainerName string

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param skuName string = 'Standard_LRS'

// The host moves a message to "<queue>-poison" after maxDequeueCount (host.json). Creating them up
// front means an alert or a replay script can rely on them existing, and the host needs no right to
// create queues at the moment something is already going wrong.
var allQueues = concat(queues, map(queues, q => '${q}-poison'))

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // Identity only: no account key works against this account, so a leaked connection string is
    // worth nothing and every access shows up as a principal in the logs.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    accessTier: 'Hot'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // GP uploads and NIMS files are evidence of what was imported; a mistaken delete is recoverable.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource appContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in blobContainers: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queueResources 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in allQueues: {
    parent: queueService
    name: queue
  }
]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
