// Key Vault (RBAC) holding the app's two keys. The function app reads them through Key Vault
// references in its settings, so the values never appear in app configuration or deployment logs.

param name string
param location string
param tags object

@secure()
@description('Keys the pseudonymous patient ids: part of the data, so it must never change by accident.')
param piiHashKey string

@secure()
@description('Signs waiting-room tickets and admission tokens.')
param waitingRoomSigningKey string

@description('Irreversible once on; turn it on for any environment that holds real personal data.')
param enablePurgeProtection bool = false

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Access by Azure RBAC, not access policies: the same role model as everything else here.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // The service rejects an explicit false, so "off" is expressed by leaving the property out.
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

// Secret names cannot contain "_", hence the dashes; the app settings keep the app's own names.
resource piiHashKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'PII-HASH-KEY'
  properties: {
    value: piiHashKey
    contentType: 'text/plain'
  }
}

resource signingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'WAITING-ROOM-SIGNING-KEY'
  properties: {
    value: waitingRoomSigningKey
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// Versionless URIs: the platform picks up a new version on its next refresh (or a restart), which
// is what a key rotation wants.
output piiHashKeySecretUri string = piiHashKeySecret.properties.secretUri
output waitingRoomSigningKeySecretUri string = signingKeySecret.properties.secretUri
