"""softphone.media"""
