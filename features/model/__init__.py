"""features/model"""
