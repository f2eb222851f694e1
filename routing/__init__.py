"""Pure routing: exchange types, the vhost topology, route traces, and the
binding-configuration language. No I/O; imports the stdlib and pyparsing only.
"""
