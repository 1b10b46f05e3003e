"""The gateway: the single public URL of Boxoffice (see ``gateway.app``)."""
