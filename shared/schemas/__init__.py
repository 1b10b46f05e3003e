"""Pydantic models of the public payloads in API.md, shared by the services and tests."""
