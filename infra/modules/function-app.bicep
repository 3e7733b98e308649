// The function app on Flex Consumption (FC1), Python 3.11, with every setting the app reads
// (local.settings.example.json gives the local values; these are the Azure ones).

param name string
param planName string
param location string
param tags object

@description('The azd service this app hosts (azure.yaml).')
param serviceName string = 'api'

param identityId string
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsConnectionString string

param cosmosEndpoint string
param cosmosDatabase string
param acsEndpoint string
param piiHashKeySecretUri string
param waitingRoomSigningKeySecretUri string
param gpInviteSigningKeySecretUri string

@allowed([
  'storage'
  'servicebus'
])
param messaging string = 'storage'

@description('Service Bus host name; used only when messaging is servicebus.')
param serviceBusNamespace string = ''

@description('Empty: no emails are sent (the app reads an unset EMAIL_FROM that way).')
param emailFrom string = ''

param smsFrom string

@description('The booking site (https://host, no trailing slash): the base of every link a text carries, and the one origin CORS allows.')
param bookingSiteUrl string

@description('Per-instance send rates, as decimal strings: the account\'s limit divided by the instance ceiling.')
param smsSendsPerMinute string
param emailSendsPerMinute string

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Instances kept warm for the HTTP functions; 0 scales to zero.')
param alwaysReadyHttpInstances int = 0

@description('Client id of the Entra app registration staff sign in with; empty: no staff sign-in.')
param staffAuthClientId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with the system-assigned identity unless told otherwise, and
    // this app has none.
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        // docs/capacity.md: about one vCPU per 2,048 MB instance, which 16 concurrent async
        // requests keep busy; at the default of one request per instance a booking's five Cosmos
        // round trips would leave the CPU idle and need hundreds of instances for the polls.
        instanceMemoryMB: 2048
        triggers: {
          http: {
            perInstanceConcurrency: 16
          }
        }
        alwaysReady: alwaysReadyHttpInstances > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttpInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      // The booking site's pages call /api from their own origin: exactly that one is allowed, with
      // credentials so that staff screens carry the App Service Authentication session.
      cors: {
        allowedOrigins: [
          bookingSiteUrl
        ]
        supportCredentials: true
      }
    }
  }
}

// Deployment uses Entra ID (azd publishes with a token), so basic-auth publishing stays off.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

// Settings that exist only in Azure. Absent on purpose: COSMOS_KEY (managed identity),
// COSMOS_CA_CERT (the system trust store verifies Cosmos DB), AzureWebJobsStorage and
// ACS_CONNECTION_STRING (identity-based endpoints below), FUNCTIONS_WORKER_RUNTIME (Flex takes
// the runtime from functionAppConfig and rejects the setting).
var azureSettings = {
  // The host and the app both reach Storage with the managed identity; these URIs replace the
  // connection string, and the app reads the same two names (shared/settings.py).
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // DefaultAzureCredential in the app picks the user-assigned identity by this.
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  ACS_ENDPOINT: acsEndpoint
  // The Cosmos DB trigger's connection uses the same identity (with COSMOS__accountEndpoint).
  COSMOS__credential: 'managedidentity'
  COSMOS__clientId: identityClientId
}

// Everything in local.settings.example.json the app needs in Azure, with its Azure value.
var appSettings = {
  AzureWebJobsFeatureFlags: 'EnableWorkerIndexing'
  COSMOS_ENDPOINT: cosmosEndpoint
  COSMOS_DATABASE: cosmosDatabase
  MESSAGING: messaging
  PII_HASH_KEY: '@Microsoft.KeyVault(SecretUri=${piiHashKeySecretUri})'
  WAITING_ROOM_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${waitingRoomSigningKeySecretUri})'
  GP_INVITE_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${gpInviteSigningKeySecretUri})'
  GP_INVITE_FACTOR: '3'
  GP_INVITE_DAYS: '14'
  BOOKING_REPAIR_SCHEDULE: '*/30 * * * * *'
  // The change feed sends booking events (docs/events.md); this timer is only the repair path for what it
  // missed, on bookings unchanged for OUTBOX_REPAIR_GRACE_SECONDS.
  OUTBOX_RELAY_SCHEDULE: '*/30 * * * * *'
  OUTBOX_REPAIR_GRACE_SECONDS: '60'
  EVENT_PUBLISH_CONCURRENCY: '64'
  // The bookings trigger's Cosmos DB connection, identity-based (the credential is in azureSettings).
  COSMOS__accountEndpoint: cosmosEndpoint
  // After each day (UTC; 01:30 is after midnight in London all year): appointments of earlier days
  // neither vaccinated nor cancelled become didNotAttend (docs/site-operations.md).
  DID_NOT_ATTEND_SCHEDULE: '0 30 1 * * *'
  REMINDER_SCHEDULE: '0 */5 * * * *'
  // The NIMS exchange (docs/nims.md): the export every 5 minutes, register files every 15 (each inbound
  // run also recounts the slot counters of recent and coming days).
  NIMS_EXPORT_SCHEDULE: '0 */5 * * * *'
  NIMS_INBOUND_SCHEDULE: '0 */15 * * * *'
  NIMS_EXPORT_BATCH_SIZE: '1000'
  NIMS_EXPORT_LEASE_SECONDS: '600'
  NIMS_RUN_SECONDS: '240'
  NIMS_INBOUND_BATCH_LINES: '1000'
  NIMS_RECOUNT_DAYS_BEFORE: '2'
  NIMS_RECOUNT_DAYS_AFTER: '14'
  SMS_FROM: smsFrom
  BOOKING_SITE_URL: bookingSiteUrl
  SMS_SENDS_PER_MINUTE: smsSendsPerMinute
  EMAIL_SENDS_PER_MINUTE: emailSendsPerMinute
  SEND_ATTEMPTS: '4'
  SEND_RETRY_BASE_SECONDS: '1'
  SEND_RETRY_MAX_SECONDS: '30'
  ACS_REPEATABILITY_WINDOW_SECONDS: '240'
  SMS_LIMIT_PER_BOOKING: '6'
  SMS_LIMIT_PER_PERSON: '10'
  SMS_LIMIT_PER_RECIPIENT: '10'
  WAITING_ROOM_REFRESH_SECONDS: '2'
  WAITING_ROOM_TOKEN_MINUTES: '10'
  WAITING_ROOM_TICKET_HOURS: '12'
  WAITING_ROOM_REPORT_SECONDS: '5'
  WAITING_ROOM_JOIN_BATCH_MS: '20'
  WAITING_ROOM_JOIN_BURST: '20'
  WAITING_ROOM_JOIN_PER_SECOND: '0.5'
  WAITING_ROOM_JOIN_SHARED_BURST: '300'
  WAITING_ROOM_JOIN_SHARED_PER_SECOND: '10'
  POLICY_REFRESH_SECONDS: '5'
  ELIGIBILITY_CLIENT_BURST: '60'
  ELIGIBILITY_CLIENT_PER_SECOND: '1'
  MATCH_LOCK_MAX_FAILURES: '5'
  MATCH_LOCK_MINUTES: '15'
  SLOT_LISTING_CACHE_SECONDS: '2'
  BOOKING_SAGA_TIMEOUT_SECONDS: '120'
  SITE_INDEX_REFRESH_SECONDS: '60'
  SITE_AVAILABILITY_SECONDS: '60'
  SLOT_WRITE_CONCURRENCY: '16'
  // The host reads no request body larger than the largest route limit, a NIMS import's 8 MiB
  // (functions/http.py IMPORT_BODY_BYTES); smaller limits per route are the app's (docs/security.md).
  FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: '8388608'
}

// The app treats a present EMAIL_FROM as "email on", even when empty, so it is left out entirely
// when there is no sender.
var emailSettings = empty(emailFrom) ? {} : {
  EMAIL_FROM: emailFrom
}

var serviceBusSettings = messaging == 'servicebus' ? {
  SERVICEBUS_CONNECTION__fullyQualifiedNamespace: serviceBusNamespace
  SERVICEBUS_CONNECTION__credential: 'managedidentity'
  SERVICEBUS_CONNECTION__clientId: identityClientId
} : {}

// A child resource rather than siteConfig.appSettings, so that settings can name the app's own
// resources. This replaces the whole collection: a setting added by hand is removed by the
// next provision, which keeps this file the truth.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(azureSettings, appSettings, emailSettings, serviceBusSettings)
}

// App Service Authentication. Staff routes trust x-ms-client-principal (shared/api/principal.py),
// and only with this module on does the platform drop that header from incoming requests, so it
// stays on even with no identity provider configured. Public routes stay anonymous.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  // Two config writes to one site at once can collide; one after the other they do not.
  dependsOn: [
    settings
  ]
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: empty(staffAuthClientId) ? {} : {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: staffAuthClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${staffAuthClientId}'
            staffAuthClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = site.name
output id string = site.id
output uri string = 'https://${site.properties.defaultHostName}'
