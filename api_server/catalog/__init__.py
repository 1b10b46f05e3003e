"""Venues, performances and sessions as the public catalog shows them."""
