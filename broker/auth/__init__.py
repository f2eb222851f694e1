"""Users and their credentials: pure code (standard library only, no trio, no broker).

`broker.auth.passwords` hashes and checks passwords exactly as RabbitMQ's
internal user database does, so that users exported from RabbitMQ (definitions
JSON) log in to Warren unchanged and back.
"""
