// The function app's identity. User-assigned rather than system-assigned so that its role
// assignments exist before the app does: the first start already reaches Storage, Cosmos DB and
// Key Vault, and a redeployed app keeps its grants.

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
