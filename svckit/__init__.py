"""FastAPI plumbing common to the three services: problem+json errors, request ids, access
log, body limit, metrics and health routes.

Why a package of its own: ``shared/`` must stay free of FastAPI and I/O, and services never
import each other, yet all three need the same error envelope and request-id rules to the
letter (API.md). Writing them three times would let them drift apart.
"""
