// Service Bus for MESSAGING=servicebus: the same handlers bound to Service Bus queues, for event
// rates above what one storage queue takes (docs/capacity.md).

param name string
param location string
param tags object

@description('The queues the app binds Service Bus triggers to (functions/notifications.py).')
param queues array

@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Premium'

@description('Messaging units; Premium only.')
param capacity int = 1

@description('Deliveries before a message is dead-lettered; the same as maxDequeueCount in host.json.')
param maxDeliveryCount int = 5

resource namespace 'Microsoft.ServiceBus/namespaces@2021-11-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
    capacity: skuName == 'Premium' ? capacity : null
  }
  properties: {
    // Entra ID only, like Storage and Cosmos DB: no SAS key to leak.
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource serviceBusQueues 'Microsoft.ServiceBus/namespaces/queues@2021-11-01' = [
  for queue in queues: {
    parent: namespace
    name: queue
    properties: {
      // The publishers set the message id to the event id or reminder key, so a resend from the
      // outbox relay or an overlapping reminder scan is dropped before delivery. The delivery
      // records still make each text go out once; this only saves the work.
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: 'PT1H'
      maxDeliveryCount: maxDeliveryCount
      lockDuration: 'PT1M'
      // A booking event carries contact details: it lives three days at most (shared/domain/retention.py
      // EVENT_MESSAGE_TTL), and an expired one is dropped, not kept in the dead-letter queue for good.
      defaultMessageTimeToLive: 'P3D'
      deadLetteringOnMessageExpiration: false
    }
  }
]

output name string = namespace.name
output id string = namespace.id
// The host name alone is what SERVICEBUS_CONNECTION__fullyQualifiedNamespace wants.
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
