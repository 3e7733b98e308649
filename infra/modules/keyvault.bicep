// Key Vault (RBAC) holding the app's two keys. The function app reads them through Key Vault
// references in its settings, so the values never appear in app configuration or deployment logs.

param name string
param location string
param tags object

@secure()
@description('Keys the pseudonymous patient ids: part of the data, so it must never change by accident.')
param piiHashKey string

@description('The PII-HASH-KEY version the app is pinned to; empty on the first provision only, which writes it.')
param piiHashKeyVersion string = ''

@secure()
@description('Signs waiting-room tickets and admission tokens.')
param waitingRoomSigningKey string

@secure()
@description('Signs GP practice invitation codes.')
param gpInviteSigningKey string

// azd generates 15 characters for a key that is not in the vault yet; the app wants at least 32 in Azure
// (shared/settings.py), so a key written for the first time is lengthened with random text. A key read
// back from the vault is already long enough and is written back unchanged.
@secure()
param piiHashKeyFiller string = newGuid()
@secure()
param signingKeyFiller string = newGuid()
@secure()
param gpInviteKeyFiller string = newGuid()
var minKeyChars = 32
var piiHashKeyValue = length(piiHashKey) >= minKeyChars ? piiHashKey : '${piiHashKey}${replace(piiHashKeyFiller, '-', '')}'
var signingKeyValue = length(waitingRoomSigningKey) >= minKeyChars ? waitingRoomSigningKey : '${waitingRoomSigningKey}${replace(signingKeyFiller, '-', '')}'
var gpInviteKeyValue = length(gpInviteSigningKey) >= minKeyChars ? gpInviteSigningKey : '${gpInviteSigningKey}${replace(gpInviteKeyFiller, '-', '')}'

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
// The PII key is part of the data (it keys every patient document id): it is written on the first
// provision only. From then on the app setting names the pinned version, so nothing a provision does,
// from any machine, changes the key the app reads.
resource piiHashKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (empty(piiHashKeyVersion)) {
  parent: vault
  name: 'PII-HASH-KEY'
  properties: {
    value: piiHashKeyValue
    contentType: 'text/plain'
  }
}

resource signingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'WAITING-ROOM-SIGNING-KEY'
  properties: {
    value: signingKeyValue
    contentType: 'text/plain'
  }
}

resource gpInviteKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'GP-INVITE-SIGNING-KEY'
  properties: {
    value: gpInviteKeyValue
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// The PII key by version (never rotated by accident); the signing key versionless: the platform picks
// up a new version on its next refresh (or a restart), which is what a signing-key rotation wants.
output piiHashKeyVersion string = empty(piiHashKeyVersion) ? last(split(piiHashKeySecret!.properties.secretUriWithVersion, '/')) : piiHashKeyVersion
output piiHashKeySecretUri string = '${vault.properties.vaultUri}secrets/PII-HASH-KEY/${empty(piiHashKeyVersion) ? last(split(piiHashKeySecret!.properties.secretUriWithVersion, '/')) : piiHashKeyVersion}'
output waitingRoomSigningKeySecretUri string = signingKeySecret.properties.secretUri
output gpInviteSigningKeySecretUri string = gpInviteKeySecret.properties.secretUri
