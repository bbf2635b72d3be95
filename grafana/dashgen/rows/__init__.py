"""The dashboard's rows, one module each; ``dashgen.layout.ROWS`` puts them in order."""
