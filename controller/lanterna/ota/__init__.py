"""Signed firmware updates (docs/ota.md): from the fleet's key to a rolled-out version.

``keys`` makes and loads the RSA-3072 signing key (the private half never leaves the
controller's home); ``bundle`` builds and reads signed bundles as strictly as a node;
``server`` answers the nodes' chunk requests over MQTT; ``rollout`` runs canary and waves
with health gates (``plan`` checks and lays out the waves), its state in the store
(``rollout_store``) so a killed controller resumes.
"""
