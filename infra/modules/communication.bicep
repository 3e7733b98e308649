// Azure Communication Services for SMS, and optionally an Email Communication Service with an
// Azure-managed domain linked to it.

param name string
param emailServiceName string
param tags object

@description('Where ACS stores message data at rest, e.g. "UK" or "Europe".')
param dataLocation string

param enableEmail bool = false

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = if (enableEmail) {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

// An Azure-managed domain works at once but has a low sending limit and a generated sender
// domain; a national service links its own verified domain instead (docs/deploy.md).
resource emailDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = if (enableEmail) {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    // No open or click tracking: the messages concern people's health appointments.
    userEngagementTracking: 'Disabled'
  }
}

resource communication 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: name
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: enableEmail ? [emailDomain.id] : []
  }
}

output name string = communication.name
output id string = communication.id
// The app authenticates to this endpoint with its managed identity (ACS_ENDPOINT); no access key
// leaves the resource.
output endpoint string = 'https://${communication.properties.hostName}'
output emailFrom string = enableEmail ? 'DoNotReply@${emailDomain.properties.mailFromSenderDomain}' : ''
