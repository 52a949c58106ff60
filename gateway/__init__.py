"""The gateway, in layers a module imports only downwards (tests/test_layers.py checks):
store/ < contract/ < core/ < engine/ (with ivr/) < channels/ < frontends/ < this package's
own modules, the assembly: the command line, the server that wires channels, lanes and
front ends together, the channel registry and the job handlers it runs."""
