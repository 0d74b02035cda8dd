"""Land-use carbon accounting: land-cover rasters of several years -> stocks, fluxes, pathways, balances."""

__version__ = "0.1.0"
