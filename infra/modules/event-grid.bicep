// GP patient lists arrive as blobs. Flex Consumption runs blob triggers only from Event Grid: the storage
// account's system topic, and a subscription that sends each BlobCreated in the container to the function
// app's blob extension webhook, which runs the blob-triggered function (functions/gp.py).

param name string
param location string
param tags object
param storageAccountName string
param functionAppName string

@description('The blob-triggered function (its source is EventGrid).')
param functionName string

@description('The container whose new blobs the function is sent.')
param containerName string

@description('Make the subscription. Event Grid validates the webhook when the subscription is made, which needs the app deployed: off on the first provision, on from the next (docs/deploy.md).')
param subscribe bool = false

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource uploads 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = if (subscribe) {
  parent: systemTopic
  name: '${containerName}-to-${replace(functionName, '_', '-')}'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        // The host's blob extension webhook takes the extension's system key (a Functions host key, not a
        // storage key), read when the subscription is made and never stored in app settings.
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${listKeys('${functionApp.id}/host/default', '2024-04-01').systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${containerName}/'
      subjectEndsWith: '.csv'
    }
    // At least once: a list the function failed on is sent again for a day; the app changes nothing twice.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output systemTopicName string = systemTopic.name
