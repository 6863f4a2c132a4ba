"""Mixture methods compared with CLIMB (no Ray inside)."""
