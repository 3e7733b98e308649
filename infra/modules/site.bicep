// The booking site and staff screens (site/): static files served by a Storage static website in the
// UK (a Static Web App would sit outside the UK regions the residency policy allows). The account holds
// no personal data: pages only, published by scripts/publish-site.sh (azd's postdeploy hook).

param name string
param location string
param tags object

@description('Who publishes the site (the azd user): may enable the static website and write its files.')
param deployerPrincipalId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    // The web endpoint serves `$web` anonymously whatever these say; they keep everything else closed.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    accessTier: 'Hot'
  }
}

// Storage Blob Data Contributor: upload the pages to `$web`.
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// Storage Account Contributor: switch the static website on (a blob service property ARM does not expose).
var accountContributor = '17d1049b-9a84-46fb-8f53-869881c3d3ab'

resource publisherRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [blobDataContributor, accountContributor]: if (!empty(deployerPrincipalId)) {
  scope: storage
  name: guid(storage.id, deployerPrincipalId, role)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: deployerPrincipalId
  }
}]

output name string = storage.name
// The web endpoint without its trailing slash: the origin CORS allows and the base of every link a text carries.
output url string = take(storage.properties.primaryEndpoints.web, length(storage.properties.primaryEndpoints.web) - 1)
