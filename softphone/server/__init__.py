"""softphone.server"""
