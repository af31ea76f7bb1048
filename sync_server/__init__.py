"""Tejas' server: the sync API (accounts, records, blobs), training and prediction jobs, prediction streams, and the
PWA and artifacts served with cross-origin isolation (main.py wires them; the README's Layout lists the rooms)."""
