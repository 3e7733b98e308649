"""The public HTTP contract: request and response models, the error envelope, the OpenAPI document."""
