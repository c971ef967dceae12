"""Quoted paper figures as package data (``<paper>.json``); see :mod:`leannets.reproduce.reference`."""
