"""The management API's endpoints, one module per area (RabbitMQ's paths and bodies)."""
