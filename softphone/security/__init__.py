"""softphone.security"""
