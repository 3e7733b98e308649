// UK data residency: Azure Policy refuses any resource in this resource group outside the UK regions.
// main.bicep's `location` parameter allows only these regions as well; the policy also holds for
// whatever is added later by hand or by another template. Global resources (Communication Services,
// whose data location is set to the UK separately) are outside the built-in policy's reach.

@description('The regions personal data may be kept in.')
param allowedLocations array = [
  'uksouth'
  'ukwest'
]

// Built-in policy "Allowed locations".
var allowedLocationsDefinition = '/providers/Microsoft.Authorization/policyDefinitions/e56962a6-4747-49cd-b67b-bf8b01975c4c'

resource ukOnly 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: 'uk-data-residency'
  properties: {
    displayName: 'UK data residency: UK South and UK West only'
    description: 'Personal data of the vaccination programme stays in the UK (docs/security.md).'
    policyDefinitionId: allowedLocationsDefinition
    enforcementMode: 'Default'
    parameters: {
      listOfAllowedLocations: {
        value: allowedLocations
      }
    }
    nonComplianceMessages: [
      {
        message: 'Resources of the vaccination platform must be in UK South or UK West.'
      }
    ]
  }
}

output policyAssignmentId string = ukOnly.id
