print("sessiond: not yet implemented")
