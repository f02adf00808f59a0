"""The TALQ gateway (`lanterna talq-gateway`, docs/talq.md): a city's TALQ central
management software (CMS) drives the fleet through the TALQ 2.7.1 Gateway API, over the
same store and signed-command library as the CLI and the web console.
"""
