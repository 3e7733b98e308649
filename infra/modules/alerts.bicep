// Alerts on what hurts people first (docs/security.md): server errors, messages the host gave up on,
// and texts that did not go. Log alerts read Application Insights; Service Bus dead letters are a
// metric of the namespace.

param location string
param tags object
param resourceToken string

@description('Application Insights the function app reports to.')
param applicationInsightsId string

@description('Where alerts go; empty: the alerts fire in the portal only.')
param alertEmail string = ''

@description('The Service Bus namespace with MESSAGING=servicebus; empty otherwise.')
param serviceBusNamespaceId string = ''

@description('Alert when more than this percentage of requests in 5 minutes answer 5xx.')
param serverErrorPercent int = 1

@description('Alert when more than this many texts fail or are handed back to the queue in 15 minutes.')
param smsFailureThreshold int = 10

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'vaxalerts'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operations'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Requests are never sampled (host.json excludes them), so the rate is exact.
resource serverErrors 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-5xx-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'HTTP 5xx rate'
    description: 'More than ${serverErrorPercent}% of requests answered 5xx in 5 minutes: the contract says never 500 for bad input.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: 'requests | summarize total = count(), failed = countif(toint(resultCode) >= 500) | where total > 0 | extend percent = 100.0 * failed / total | project percent'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'percent'
          operator: 'GreaterThan'
          threshold: serverErrorPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// functions/operations.py logs each app queue's poison depth every five minutes
// (shared/services/poison.py DEPTH_LINE); replay with `python -m devhost.poison`.
resource poisonDepth 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-poison-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Messages on a poison queue'
    description: 'A queue trigger gave up on messages: fix the cause, then replay them (docs/security.md).'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'traces | where message startswith "poison queue depth: " | parse message with "poison queue depth: " queue:string " " depth:long | summarize depth = max(depth) by queue | where depth > 0'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// shared/services/notifications.py logs these when ACS refuses a text or stays busy past the retries.
resource smsFailures 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-sms-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Texts failing'
    description: 'More than ${smsFailureThreshold} texts refused by ACS or handed back to the queue in 15 minutes.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'traces | where message has "ACS refused it" or message has "ACS busy after"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: smsFailureThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// With Service Bus the host dead-letters instead of writing a poison queue.
resource deadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = if (!empty(serviceBusNamespaceId)) {
  name: 'alert-deadletter-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages dead-lettered on a Service Bus queue: fix the cause, then resubmit them.'
    severity: 2
    enabled: true
    scopes: [
      serviceBusNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          name: 'deadLettered'
          criterionType: 'StaticThresholdCriterion'
          metricName: 'DeadletteredMessages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

output actionGroupId string = actionGroup.id
