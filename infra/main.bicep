// The whole platform in one resource group: `azd up` provisions this, then deploys the app.
// docs/deploy.md says what each module creates and what to change before a national launch.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('The azd environment name; names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region for everything regional. It must offer Flex Consumption. UK only: personal data stays in the UK (modules/residency.bicep).')
@metadata({
  azd: {
    type: 'location'
  }
})
@allowed([
  'uksouth'
  'ukwest'
])
param location string

@description('The person or pipeline running azd (azd fills it in); may be empty.')
param principalId string = ''

@description('The transport for booking events and reminders: Storage queues, or Service Bus at 5M bookings/h.')
@allowed([
  'storage'
  'servicebus'
])
param messaging string = 'storage'

@description('Flex Consumption instance ceiling (40-1,000). docs/capacity.md: ~60 at 500k bookings/h, ~600 at 5M/h.')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 100

@description('HTTP instances kept warm, so a campaign opening does not meet cold starts; 0 scales to zero.')
@minValue(0)
param functionAlwaysReadyHttpInstances int = 0

@description('The planned total Cosmos DB autoscale maximum in RU/s, split between containers. 40,000 for 500k bookings/h.')
@minValue(6000)
param cosmosAutoscaleMaxThroughput int = 10000

param cosmosZoneRedundant bool = false

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Where Communication Services keeps data at rest.')
param acsDataLocation string = 'UK'

@description('The SMS sender (alphanumeric sender id) texts come from.')
param smsFrom string = 'VaxBooking'

@description('Texts a minute the ACS resource may send in total (its quota); split evenly over the instance ceiling.')
@minValue(1)
param acsSmsPerMinute int = 600

@description('Create an Email Communication Service with an Azure-managed domain and send email too.')
param enableEmail bool = false

@description('Emails a minute the email domain may send in total; split like the SMS quota.')
@minValue(1)
param acsEmailPerMinute int = 30

@description('The public booking site people manage bookings on (a custom domain in front of it); empty: the site\'s Storage static website (modules/site.bicep).')
param bookingSiteUrl string = ''

@description('Client id of the Entra app registration staff sign in with (app roles NationalAdmin, SiteManager, SiteStaff, GpPractice).')
param staffAuthClientId string = ''

@allowed([
  'Standard'
  'Premium'
])
param serviceBusSkuName string = 'Premium'

@minValue(1)
param serviceBusCapacity int = 1

@description('Irreversible once on. Turn on for any environment holding real personal data.')
param keyVaultPurgeProtection bool = false

@description('Where alerts (5xx rate, poison queues, failing texts) are emailed; empty: portal only.')
param alertEmail string = ''

@secure()
@minLength(15)
@description('HMAC key for patient ids and log hashes. azd reads it back from Key Vault on every provision (main.parameters.json).')
param piiHashKey string

@secure()
@minLength(15)
@description('Signs waiting-room tickets and admission tokens.')
param waitingRoomSigningKey string

@secure()
@minLength(15)
@description('Signs GP practice invitation codes (docs/gp-practices.md).')
param gpInviteSigningKey string

@description('Send gp-uploads blob events to the function. Off for the first provision: Event Grid validates the endpoint when the subscription is made, so the app must be deployed first (docs/deploy.md).')
param gpUploadEvents bool = false

@description('The version of the PII-HASH-KEY secret the app is pinned to. Empty only on the first provision, which writes the secret; azd keeps the version from then on (output PII_HASH_KEY_VERSION), and no later provision writes the key again (docs/security.md, finding 3).')
param piiHashKeyVersion string = ''

var tags = {
  'azd-env-name': environmentName
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var functionAppName = 'func-${resourceToken}'

// --- What the app declares, mirrored from shared/resources.py (tests/unit/test_infra.py keeps the
// --- two equal).

var cosmosDatabaseName = 'vaccination'

// throughputShare: percent of cosmosAutoscaleMaxThroughput, from docs/capacity.md's RU per container.
// ttl: the code writes a per-document `ttl` into that container, which Cosmos DB honours only
// when the container has a default TTL.
var cosmosContainers = [
  {
    name: 'patients'
    partitionKey: '/nhsNumber'
    ttl: true
    throughputShare: 20
    indexedPaths: []
  }
  {
    name: 'sites'
    partitionKey: '/siteId'
    ttl: false
    throughputShare: 4
    indexedPaths: []
  }
  {
    name: 'bookings'
    partitionKey: '/siteId'
    // Booking documents expire once their use is over (shared/domain/retention.py, docs/security.md).
    ttl: true
    throughputShare: 38
    // Exactly what the repair timer, outbox relay, day list and reminder scan filter on
    // (shared/adapters/cosmos_bookings.py, cosmos_deliveries.py), and the slot searches (slot documents
    // live here, beside their site's bookings: cosmos_sites.py); id and _ts are always indexed.
    indexedPaths: [
      '/sessionId/?'
      '/product/?'
      '/booked/?'
      '/capacity/?'
      '/type/?'
      '/bookingStatus/?'
      '/deadlineEpoch/?'
      '/cleanupPending/?'
      '/outboxPending/?'
      '/moveEpoch/?'
      '/siteId/?'
      '/localDate/?'
      '/status/?'
      '/start/?'
    ]
  }
  {
    name: 'config'
    partitionKey: '/id'
    ttl: true
    throughputShare: 0
    indexedPaths: []
  }
  {
    name: 'deliveries'
    partitionKey: '/id'
    ttl: true
    throughputShare: 26
    indexedPaths: []
  }
  {
    name: 'waiting-room'
    partitionKey: '/pk'
    ttl: true
    throughputShare: 12
    indexedPaths: []
  }
  {
    // GP practices (docs/gp-practices.md): uploads and invitations, a partition per practice; the
    // register check itself reads `patients`. docs/capacity.md sizes it for a morning of uploads.
    name: 'gp'
    partitionKey: '/odsCode'
    ttl: false
    throughputShare: 0
    indexedPaths: []
  }
  {
    // One record per dose given (docs/site-operations.md): a few writes per vaccination, read by the
    // NIMS exporter; the 1,000 RU/s floor covers a national day of doses.
    name: 'vaccinations'
    partitionKey: '/siteId'
    ttl: false
    throughputShare: 0
    indexedPaths: []
  }
  {
    // The audit trail of staff actions, a partition per site and day; kept (no ttl).
    name: 'audit'
    partitionKey: '/pk'
    ttl: false
    throughputShare: 0
    indexedPaths: []
  }
  {
    // The NIMS exchange's ledger (docs/nims.md): one small document per outbound batch and per inbound
    // file, a few writes per batch of lines; kept, as the record of what was sent and applied.
    name: 'nims'
    partitionKey: '/pk'
    ttl: false
    throughputShare: 0
    indexedPaths: []
  }
  {
    // The operator dashboard's counters (docs/dashboard.md): one patch per document per batch of events,
    // a few small single-partition queries per dashboard view; documents expire a week after their day.
    name: 'dashboard'
    partitionKey: '/pk'
    ttl: true
    throughputShare: 0
    indexedPaths: [
      '/pk/?'
    ]
  }
  {
    // The bookings change feed's leases (docs/events.md): one small document per partition key range of
    // `bookings`, checkpointed after each batch of booking events; the Functions host requires /id.
    name: 'leases'
    partitionKey: '/id'
    ttl: false
    throughputShare: 0
    indexedPaths: []
  }
]

var storageQueues = [
  'booking-events'
  'waiting-room-joins'
  'reminders'
  'gp-invitations'
]

var blobContainers = [
  'gp-uploads'
  'gp-reports'
  'nims-inbound'
  'nims-outbound'
  'nims-inbound-reports'
]

// Only these two have Service Bus triggers; waiting-room joins always use the storage queue.
var serviceBusQueues = [
  'booking-events'
  'reminders'
]

// Flex Consumption deploys from a blob container of its own.
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}'

// shared/settings.py: each instance sends at most its share of the account's quota, so the whole
// app stays under it at the instance ceiling. The settings take decimals; Bicep has only integers,
// so the share is worked out in thousandths.
var smsMilli = acsSmsPerMinute * 1000 / functionMaximumInstanceCount
var smsSendsPerMinute = '${smsMilli / 1000}.${padLeft(string(smsMilli % 1000), 3, '0')}'
var emailMilli = acsEmailPerMinute * 1000 / functionMaximumInstanceCount
var emailSendsPerMinute = '${emailMilli / 1000}.${padLeft(string(emailMilli % 1000), 3, '0')}'

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

// Azure Policy on the resource group: nothing in it may be created outside UK South or UK West.
module residency 'modules/residency.bicep' = {
  name: 'residency'
  scope: rg
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    queues: storageQueues
    blobContainers: blobContainers
    deploymentContainerName: deploymentContainerName
    skuName: storageSkuName
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: 'cosmos-${resourceToken}'
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    containers: cosmosContainers
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    zoneRedundant: cosmosZoneRedundant
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    piiHashKey: piiHashKey
    piiHashKeyVersion: piiHashKeyVersion
    waitingRoomSigningKey: waitingRoomSigningKey
    gpInviteSigningKey: gpInviteSigningKey
    enablePurgeProtection: keyVaultPurgeProtection
  }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    name: 'acs-${resourceToken}'
    emailServiceName: 'ecs-${resourceToken}'
    tags: tags
    dataLocation: acsDataLocation
    enableEmail: enableEmail
  }
}

module serviceBus 'modules/servicebus.bicep' = if (messaging == 'servicebus') {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-${resourceToken}'
    location: location
    tags: tags
    queues: serviceBusQueues
    skuName: serviceBusSkuName
    capacity: serviceBusCapacity
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    serviceBusNamespaceId: messaging == 'servicebus' ? serviceBus.outputs.id : ''
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    cosmosAccountName: cosmos.outputs.name
    keyVaultName: keyVault.outputs.name
    communicationName: communication.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusNamespaceName: messaging == 'servicebus' ? serviceBus.outputs.name : ''
    deployerPrincipalId: principalId
  }
}

// The booking site and staff screens (site/): a Storage static website in the UK, published by azd's
// postdeploy hook (scripts/publish-site.sh). Its address is BOOKING_SITE_URL and the one origin CORS allows.
module site 'modules/site.bicep' = {
  name: 'site'
  scope: rg
  params: {
    name: 'stweb${resourceToken}'
    location: location
    tags: tags
    deployerPrincipalId: principalId
  }
}

var siteUrl = empty(bookingSiteUrl) ? site.outputs.url : bookingSiteUrl

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  // The app's first start resolves Key Vault references and opens Storage with its identity;
  // granting first avoids a start that fails and a wait for the next retry.
  dependsOn: [
    roles
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabase: cosmos.outputs.databaseName
    acsEndpoint: communication.outputs.endpoint
    piiHashKeySecretUri: keyVault.outputs.piiHashKeySecretUri
    waitingRoomSigningKeySecretUri: keyVault.outputs.waitingRoomSigningKeySecretUri
    gpInviteSigningKeySecretUri: keyVault.outputs.gpInviteSigningKeySecretUri
    messaging: messaging
    serviceBusNamespace: messaging == 'servicebus' ? serviceBus.outputs.fullyQualifiedNamespace : ''
    emailFrom: communication.outputs.emailFrom
    smsFrom: smsFrom
    bookingSiteUrl: siteUrl
    smsSendsPerMinute: smsSendsPerMinute
    emailSendsPerMinute: emailSendsPerMinute
    maximumInstanceCount: functionMaximumInstanceCount
    alwaysReadyHttpInstances: functionAlwaysReadyHttpInstances
    staffAuthClientId: staffAuthClientId
  }
}

// GP patient lists: the storage account's Event Grid system topic sends each blob created in gp-uploads
// to the blob trigger (Flex Consumption runs blob triggers only this way).
module gpUploadEventGrid 'modules/event-grid.bicep' = {
  name: 'gp-upload-events'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    functionAppName: functionApp.outputs.name
    functionName: 'check_gp_upload'
    containerName: 'gp-uploads'
    subscribe: gpUploadEvents
  }
}

// azd stores these in the environment (.azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
// main.parameters.json reads the two secrets back from this vault on the next provision.
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
// The PII key's version, pinned in the app setting: azd stores it and passes it back (main.parameters.json).
output PII_HASH_KEY_VERSION string = keyVault.outputs.piiHashKeyVersion
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
// scripts/publish-site.sh uploads site/ here, and writes SERVICE_API_URI into the pages' config.
output AZURE_SITE_STORAGE_ACCOUNT_NAME string = site.outputs.name
output BOOKING_SITE_URL string = siteUrl
output AZURE_COSMOS_ACCOUNT_NAME string = cosmos.outputs.name
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmos.outputs.databaseName
output ACS_ENDPOINT string = communication.outputs.endpoint
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
